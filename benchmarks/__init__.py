"""betaprop's benchmarks: one training epoch against scikit-learn, PyTorch and the GEMM bound.

Not part of the installed library: run them from a source checkout,

    python -m benchmarks.bench --quick        # or: betaprop bench --quick
    python -m benchmarks.compare --before ../base/src --after src   # paired before / after
    python benchmarks/parity.py               # estimators against scikit-learn's

Modules: ``workloads`` (data, sizes, targets), ``contenders`` (one epoch of each contender,
the GEMM bound), ``workers`` (what a child process runs), ``processes`` (the parent side:
children, interleaving), ``report`` (statistics, machine, tables), ``command`` (options,
sections, ``main``), ``bench`` (the launcher), ``compare`` (two source trees, paired).
"""
