"""The stages of a cell, in the order the runner calls them::

    plan     matrix -> typed cells and their keys                         (plan.py)
    prepare  dataset image -> (HR modcropped, LR given or synthesised)    (prepare.py)
    corrupt  LR -> corrupted LR, generator seeded by (cell key, image)   (corrupt.py)
    attack   corrupted LR -> x_adv, generator by (cell key, image, "attack")  [attacked cells]  (attack.py)
    infer    x -> SR (or the certified smoothed prediction), generator by (cell key, image, "method")  (infer.py)
    score    SR, HR, x -> one value per image and metric (and certified columns)  (score.py)
    sample   n SR samples per image -> NTIRE 2021 SR-space columns  [matrix sr_space:]  (sample.py)
    record   values -> tidy rows and the cell payload of the results schema  (record.py)

Alongside: sigma selection of median smoothing (sigma.py), the gallery crops (gallery.py) and the stored SR outputs
(outputs.py). Each stage is a function or a small class; :mod:`bench.runner.runner` only loops, skips, builds and
persists.
"""
