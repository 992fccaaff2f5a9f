"""RWKV-MoE neural predictor: config (pure Python), data, training/export (torch), eval (onnxruntime).

Importing this package imports nothing heavy; torch is loaded only by ``model``, ``train`` and
``export``. The step equations and weight layout are in ``SPEC.md`` next to this file.
"""
