"""Thin gRPC servicers: translate protobuf to domain calls and back, nothing more."""
