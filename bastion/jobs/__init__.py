"""Background jobs (imports, exports): queued through the Django Tasks API, their state in the Job table.

Modules: models (Job), services (submit, cancel, files, limits, sweeps), runners (what each kind of job does,
and the Progress a runner reports through), tasks (the one @task that runs a job), worker (the worker
process, and run_pending for tests), embedded (the worker `bastion serve` starts), views (the Jobs pages).
"""
