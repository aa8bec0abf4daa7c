"""The pipeline's stages, one module each (`infer`, `fuse`, `evaluate`, `finetune`).

Each has a frozen config dataclass (everything the stage needs, its deadline and Pushgateway included), a result
dataclass with `summary()`, and `run(config, metrics=None) -> result`. A Job (`stseg_jobs.<stage>`) parses its
environment into the config and a local command (`stseg infer`, …) its flags; both call `run` and print the
summary.
"""
