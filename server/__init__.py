"""privsynth server: gRPC servicers over domain modules (ingest, jobs, ledger, generation)."""
