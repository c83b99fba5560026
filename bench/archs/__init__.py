"""Network architectures (pure torch; no torchvision)."""
