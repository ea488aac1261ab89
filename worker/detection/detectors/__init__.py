"""The detection stage: detectors, their checkpoints, batched inference, explanations, training.

Only ``manifest`` is torch-free; everything else imports torch and is loaded by the gpu worker (or
the CLI) on first use, never by the API process.
"""
