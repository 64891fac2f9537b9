"""Transports: how bytes move between ranks (in-process queues, pipes, MPI); the contract is in base.py."""
