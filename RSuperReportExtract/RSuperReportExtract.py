"""R-Super Report Extract (placeholder until the Slicer-extension issue lands).

The module stays thin: every decision lives in the ``rsuper`` core package.
"""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class RSuperReportExtract(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "R-Super Report Extract"
        self.parent.categories = ["Segmentation.R-Super"]
        self.parent.dependencies = []
        self.parent.contributors = ["R-Super for 3D Slicer developers"]
        self.parent.helpText = "Extract tumour facts (organ, sub-segment, diameters, count) from radiology reports."
        self.parent.acknowledgementText = (
            "Method: Bassi et al., Learning Segmentation from Radiology Reports, MICCAI 2025."
        )


class RSuperReportExtractWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        import qt

        label = qt.QLabel("R-Super Report Extract: the user interface arrives with the Slicer-extension work.")
        label.wordWrap = True
        self.layout.addWidget(label)
        self.layout.addStretch(1)


class RSuperReportExtractLogic(ScriptedLoadableModuleLogic):
    pass


class RSuperReportExtractTest(ScriptedLoadableModuleTest):
    def runTest(self):
        slicer.mrmlScene.Clear()
        self.delayDisplay("RSuperReportExtract placeholder loads")
