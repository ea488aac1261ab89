"""Detector architectures in plain torch.nn (no torchvision), named as the upstream checkpoints are."""
