"""Command-line subcommand of the attacks area: ``attack`` (one image, one method, one attack).

``python -m bench attack pgd --method realesrgan-x4plus --lr LR.png --hr HR.png --eps 10/255 --steps 10 --out ADV.png``

Writes the adversarial LR (8-bit PNG) and prints the attack loss and the PSNR (RGB, crop = scale) of the method's
output before and after the attack. The scores are computed on the **written** (8-bit rounded) adversarial image;
rounding keeps an L-infinity bound that is a multiple of 1/255. Without ``--hr`` the attack is the no-reference
variant (``target=clean``) and the PSNR is that of the attacked output against the clean output.
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def parse_eps(text: str) -> float:
    """``"10/255"`` -> 10/255, ``"0.04"`` -> 0.04 (an epsilon on the [0, 1] scale)."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise argparse.ArgumentTypeError(f"not an epsilon: {text!r} (write 10/255 or 0.039)") from exc


def _parse_set(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``attack`` subcommand (``func`` = :func:`attack_command`)."""
    p = subparsers.add_parser(
        "attack",
        help="attack one LR image through a method and write the adversarial LR",
        description="Run ATTACK (fgsm, bim, pgd, cw, eot, random_sign, degradation) against METHOD on one image.",
    )
    p.add_argument("attack", metavar="ATTACK", help="attack name (see bench.attacks.ATTACKS)")
    p.add_argument("--method", required=True, help="method card name or card file")
    p.add_argument("--lr", required=True, help="LR input image")
    p.add_argument("--hr", default=None, help="HR ground truth (omit for the no-reference variant)")
    p.add_argument("--out", required=True, help="where to write the adversarial LR (PNG)")
    p.add_argument("--eps", type=parse_eps, default=None, help="budget, e.g. 10/255 (attack default otherwise)")
    p.add_argument("--steps", type=int, default=None, help="iterations (attack default otherwise)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other attack parameter")
    p.add_argument(
        "--loss", default="l1_perceptual", help="attack loss (l1_perceptual, certsr_paper, l1, mse; see bench.attacks)"
    )
    p.add_argument("--backbone", default="auto", help="perceptual backbone: auto, vgg19, vgg16")
    p.add_argument("--surrogate", default=None, help="method card to compute the attack on (transfer)")
    p.add_argument("--eot-samples", type=int, default=None, help="EOT draws for stochastic methods (8)")
    p.add_argument("--restarts", type=int, default=1, help="restarts, worst kept (1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the attack's generator (0)")
    p.add_argument("--json", action="store_true", help="also print the full record as JSON")
    p.set_defaults(func=attack_command)
    return p


def attack_command(args: argparse.Namespace) -> int:
    """Handler of ``attack``; user errors raise KeyError/FileNotFoundError/ValueError (one line, exit code 2)."""
    import inspect
    import json

    import torch

    from bench.attacks import ATTACKS, build_loss
    from bench.attacks.losses import describe
    from bench.images import quantize, read_image, write_image
    from bench.methods.cards import build_method
    from bench.methods.commands import resolve_device
    from bench.metrics import build_metric
    from bench.seeding import make_generator

    device = resolve_device(args.device)
    cls = ATTACKS.get(args.attack)
    params = _parse_set(args.set)
    accepted = set(inspect.signature(cls).parameters)
    for name, value in (("eps", args.eps), ("steps", args.steps)):
        if value is None:
            continue
        if name not in accepted and "attack_params" not in accepted:
            raise ValueError(f"attack {args.attack!r} takes no --{name}")
        params[name] = value
    with_backbone = ("l1_perceptual", "default", "l1_vgg", "certsr_paper", "paper")
    loss_kwargs = {"backbone": args.backbone} if args.loss in with_backbone else {}
    loss = build_loss(args.loss, **loss_kwargs)
    target = "hr" if args.hr else "clean"
    common = {"loss": loss, "target": target, "surrogate": args.surrogate, "restarts": args.restarts}
    if "eot_samples" in accepted or "kwargs" in accepted:
        common["eot_samples"] = args.eot_samples
    elif args.eot_samples is not None:
        params["samples"] = args.eot_samples
    attack = cls(**common, **params)

    method = build_method(args.method, device, tile=0)  # gradients need the whole image: no tiling
    lr = read_image(args.lr).unsqueeze(0).to(device)
    hr = read_image(args.hr).unsqueeze(0).to(device) if args.hr else None
    result = attack(method, lr, hr, make_generator(args.seed, device))
    x_adv = quantize(result.x_adv)
    write_image(x_adv[0].cpu(), args.out)

    def sr(x: torch.Tensor) -> torch.Tensor:
        generator = make_generator(args.seed + 1, device) if method.capabilities.stochastic else None
        return method.super_resolve(x, generator)

    psnr = build_metric("psnr", crop_border=method.scale)
    clean = attack.clean_input(lr, hr)
    sr_clean, sr_adv = sr(clean), sr(x_adv)
    reference = hr if hr is not None else sr_clean
    psnr_clean = float("inf") if hr is None else float(psnr(sr_clean, reference)[0])
    psnr_adv = float(psnr(sr_adv, reference)[0])
    linf = float((x_adv - clean).abs().max()) * 255
    print(
        f"{args.attack} on {method.label} ({result.mode}): {result.forward_count} forward, "
        f"{result.backward_count} backward, {result.seconds:.2f} s; ||x_adv - x||_inf = {linf:.2f}/255"
    )
    print(f"loss ({describe(result.spec['loss'])}): {result.loss_clean[0]:.5f} -> {result.loss_adv[0]:.5f}")
    what = "vs HR" if hr is not None else "vs the clean output"
    print(f"psnr ({what}, RGB, crop {method.scale}): {psnr_clean:.3f} dB -> {psnr_adv:.3f} dB")
    print(f"wrote {args.out}")
    if args.json:
        record = result.record()
        record.update({"psnr_clean": psnr_clean, "psnr_adv": psnr_adv, "out": str(args.out)})
        print(json.dumps(record, default=str))
    return 0
