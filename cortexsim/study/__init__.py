"""Studies: a TOML study file -> a validated plan (``load_study``) -> one recorded
run per rule x seed (``run_study``), with command-line overrides."""
