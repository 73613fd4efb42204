"""Engineering -> Deployment: go/no-go gates, promotion into the BentoML model store, the ledger, model cards."""
