"""Training runs, the model server, evaluation and export.

``trainer.control`` is the torch-free part that the CLI and the app import: run settings and
their defaults, jobs, snapshots, scoring, the launch settings of several processes, the server's
launcher and client. Everything else here loads torch and runs only in child processes:
``trainer.training`` (a run), ``trainer.serving`` (the model server), ``trainer.evaluation``,
``trainer.export`` and ``trainer.models`` (loading base models).
"""
