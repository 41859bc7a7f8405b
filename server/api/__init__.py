"""The gRPC layer: servicers (services/), interceptors, admission control, auth, names."""
