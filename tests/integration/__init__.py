"""Tests against a real SLURM and Grid Engine (markers slurm, sge)."""
