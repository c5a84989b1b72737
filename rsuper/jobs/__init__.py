"""R-Super: long jobs run as ``rsuper`` child processes, followed by a GUI (the 3D Slicer modules) or a script.

* :mod:`rsuper.jobs.commands`: argument lists (``[python, "-m", "rsuper", SUBCOMMAND, ...]``) of the
  sub-commands a GUI starts, with JSON-lines progress on stdout;
* :mod:`rsuper.jobs.background`: :class:`~rsuper.jobs.background.BackgroundJob`, one child process whose
  JSON-lines events are collected by reader threads and handed out by a non-blocking ``poll()``;
* :mod:`rsuper.jobs.training`: :class:`~rsuper.jobs.training.TrainingJobWatcher`, follows a training job
  folder (also one started before a restart of the GUI), and :class:`~rsuper.jobs.training.TrainingRun`;
* :mod:`rsuper.jobs.train_setup`: a GUI's training run as ``train.yaml`` and ``--set`` overrides;
* :mod:`rsuper.jobs.environment`: the interpreter and ``PYTHONPATH`` of the child processes.

Standard library only (no torch, numpy, Qt or Slicer), so a GUI can import it at start-up.
"""
