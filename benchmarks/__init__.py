"""The benchmarks of ae_jax's training engine (`python -m ae_jax.bench`, or `python -m benchmarks.bench`).

Outside the library on purpose: they fork child processes, pin thread pools and import PyTorch, none of
which importing `ae_jax` may do. See benchmarks/README.md for what each key measures.
"""
