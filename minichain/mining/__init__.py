"""Mining: block templates, the miner threads, and the SHA-256d scan kernel.

``kernel`` is the binding of the compiled kernel (``cython_ext/``, built into
``minichain._sha256d``) with a pure-Python fallback; ``template`` builds the block to
mine; ``miner`` runs threads that scan nonce ranges of it.
"""
