"""RSuperLib: the adapter between 3D Slicer and the pure ``rsuper`` package.

The only code of the extension that imports ``slicer``, ``qt`` or ``vtk``;
the three modules (RSuper, RSuperReportExtract, RSuperTrain) import it as
``from RSuperLib import Nodes`` (Slicer puts every module folder on
``sys.path``). Every decision (commands, progress parsing, requirement
checks, summaries, comparison rows) lives in ``rsuper``; these files only
move data between MRML nodes, Qt timers / dialogs and that package.

* :mod:`RSuperLib.Nodes`: numpy arrays <-> volume / segmentation / markups nodes
  (MRML only; tested with the ``slicer-core`` wheel, no Slicer application);
* :mod:`RSuperLib.ProcessPoller`: a ``qt.QTimer`` forwarding a job's events;
* :mod:`RSuperLib.Jobs`: starting ``rsuper`` child processes (Python, environment) and
  following one in a panel (progress bar, status line, Cancel, errors);
* :mod:`RSuperLib.Install`: first-run installation of rsuper's requirements;
* :mod:`RSuperLib.Dialogs`: message boxes and file choosers;
* :mod:`RSuperLib.WidgetBase`: the scripted-module template code the three module panels share
  (parameter node, scene close, enter / exit, cleanup).

Importing the package imports none of them (nor torch): import the one needed.
"""
