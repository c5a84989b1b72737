"""R-Super: compare the AI's tumours with the report's (``rsuper compare``).

* :mod:`rsuper.compare.match`: :func:`~rsuper.compare.match.compare_case`,
  per-organ optimal matching by size and the flags (agrees, size_differs,
  ai_only, normal_organ, report_only, not_assessed) with a severity;
* :mod:`rsuper.compare.inputs`: the AI's tumours (``tumours.json`` or a label
  NIfTI), facts, report texts;
* :mod:`rsuper.compare.render` / :mod:`rsuper.compare.pages`: PNG snapshots
  and the self-contained HTML pages;
* :mod:`rsuper.compare.report`: one case or a cohort to JSON and HTML;
* :mod:`rsuper.compare.table` / :mod:`rsuper.compare.segments`: the rows of
  the Slicer comparison table, the label file a comparison used, and the
  names and colours of AI tumour segments;
* :mod:`rsuper.compare.command_compare`: the command.

Nothing here imports torch.
"""
