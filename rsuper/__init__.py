"""R-Super core: learn tumour segmentation from radiology reports.

Pure Python (no Slicer, Qt, VTK or CTK imports). Sub-packages, one per stage:
``report`` (facts from report text), ``anatomy`` (organ masks), ``losses``,
``data``, ``model``, ``train``, ``infer``, ``compare``, ``evaluate``.
"""

__version__ = "0.1.0"
