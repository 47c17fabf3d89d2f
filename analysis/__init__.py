"""The analysis of run folders, read by their files alone (config.json, results.json, tb/):
the paper's measures (``metrics``), grouping runs into experiments (``grouping``), bootstrap
estimates (``bootstrap``), the reports (``report``: entry; ``rl``, ``supervised``: the
computation; ``text``: their tables), the plots (``plots``) and TensorBoard reading
(``tensorboard_events``). It imports nothing of the run package (``continual/``)."""
