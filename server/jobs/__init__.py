"""Training jobs: the runner (queue, execution, ledger endings) and the torchrun entry point."""
