"""Classical interatomic potentials as data (parameters with their citations), for the classical MD baseline."""
