"""The scripted-module template code the three R-Super modules share (needs the Slicer application).

Slicer's scripted-module template repeats, in every widget, the same life cycle around a
``@parameterNodeWrapper`` parameter node: load the panel's ``.ui``, create the logic, follow the scene's
close events, connect the parameter node to the panel (``connectGui``) and observe it while the module is
shown, let go of it on ``exit``, ``cleanup`` the observers. :class:`WidgetBase` does that once; a module's
widget subclasses it and keeps only its own wiring, in three hooks:

* :meth:`WidgetBase.createLogic`: the module's logic (its ``getParameterNode()`` returns the wrapper);
* :meth:`WidgetBase.setupPanel`: signal connections and helpers of the panel, before the parameter node
  is connected;
* :meth:`WidgetBase.setDefaultParameters` and :meth:`WidgetBase.onParameterNodeModified`: defaults of an
  empty parameter node, and the panel's reaction to any change of it.

:func:`describeModule` fills the title, category, contributors and texts of a module class.
"""

from __future__ import annotations

from typing import Any

import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

#: Module category of the three modules (Slicer's module menu: Segmentation > R-Super).
CATEGORY = "Segmentation.R-Super"


def describeModule(parent: Any, title: str, helpText: str) -> None:
    """Set what the module menu and the help section show for an R-Super module.

    Args:
        parent: the ``qSlicerScriptedLoadableModule`` given to the module class (``self.parent``).
        title: the translated title.
        helpText: the translated help text.
    """
    parent.title = title
    parent.categories = [CATEGORY]
    parent.dependencies = []
    parent.contributors = ["R-Super for 3D Slicer developers"]
    parent.helpText = helpText
    parent.acknowledgementText = _("Method: Bassi et al., Learning Segmentation from Radiology Reports, MICCAI 2025.")


class WidgetBase(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """A module panel loaded from ``Resources/UI/<module>.ui`` and bound to the module's parameter node.

    Attributes:
        ui: the panel's named child widgets (``slicer.util.childWidgetVariables``).
        logic: the module's logic (:meth:`createLogic`).
    """

    def __init__(self, parent: Any = None) -> None:
        # Attributes first: without a parent, ScriptedLoadableModuleWidget.__init__ runs setup() at once.
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        VTKObservationMixin.__init__(self)  # observes the scene and the parameter node
        ScriptedLoadableModuleWidget.__init__(self, parent)

    # ------------------------------------------------------------------ hooks of a module
    def createLogic(self) -> Any:
        """The module's logic; its ``getParameterNode()`` returns the ``@parameterNodeWrapper`` object."""
        raise NotImplementedError

    def setupPanel(self) -> None:
        """Connect the panel's own signals (``self.ui`` and ``self.logic`` exist; no parameter node yet)."""

    def setDefaultParameters(self, parameterNode: Any) -> None:
        """Fill fields of a parameter node the user has not set yet (e.g. the first volume of the scene)."""

    def onParameterNodeModified(self, caller: Any = None, event: Any = None) -> None:
        """Update the parts of the panel the parameter node does not bind (enabled buttons, visible fields)."""

    # ------------------------------------------------------------------ life cycle
    def setup(self) -> None:
        """Load the panel, create the logic, follow the scene closing, wire the panel, bind the parameter node."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects its node selectors to mrmlSceneChanged(vtkMRMLScene*), so they get the scene here.
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.createLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.setupPanel()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """The application closes or the module is reloaded: stop observing."""
        self.removeObservers()

    def enter(self) -> None:
        """The module is shown: make sure its parameter node exists and is bound."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Another module is shown: stop updating this panel (it is bound again on :meth:`enter`)."""
        self._releaseParameterNode()

    def onSceneStartClose(self, caller: Any, event: Any) -> None:
        """The scene is about to close: its parameter node goes with it."""
        self.setParameterNode(None)

    def onSceneEndClose(self, caller: Any, event: Any) -> None:
        """The scene was closed: a shown module gets a new parameter node at once."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Bind the logic's parameter node (created with the scene's first use) and fill its defaults."""
        self.setParameterNode(self.logic.getParameterNode())
        self.setDefaultParameters(self._parameterNode)

    def setParameterNode(self, parameterNode: Any) -> None:
        """Bind ``parameterNode`` (a wrapper, or ``None``) to the panel, in place of the current one."""
        self._releaseParameterNode()
        self._parameterNode = parameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" dynamic property in the .ui are bound to that field.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self.onParameterNodeModified()

    def _releaseParameterNode(self) -> None:
        """Unbind the current parameter node from the panel and stop observing it (it stays the current one)."""
        if not self._parameterNode:
            return
        if self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
        # Already released on exit(): the observer is gone then (removing it again would only warn).
        if self.hasObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified):
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
