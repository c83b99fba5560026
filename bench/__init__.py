"""Robust real-world super-resolution benchmark.

Images are ``torch.float32`` tensors in NCHW layout, RGB, values in [0, 1]. Everything else (uint8, Y channel,
[-1, 1]) is a conversion made inside the component that needs it.
"""

__version__ = "0.1.0"
