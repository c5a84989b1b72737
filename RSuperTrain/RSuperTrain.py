"""R-Super Train (placeholder until the Slicer-extension issue lands).

The module stays thin: every decision lives in the ``rsuper`` core package.
"""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class RSuperTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "R-Super Train"
        self.parent.categories = ["Segmentation.R-Super"]
        self.parent.dependencies = []
        self.parent.contributors = ["R-Super for 3D Slicer developers"]
        self.parent.helpText = "Train a tumour segmenter from CT-mask and CT-report pairs in a background process."
        self.parent.acknowledgementText = (
            "Method: Bassi et al., Learning Segmentation from Radiology Reports, MICCAI 2025."
        )


class RSuperTrainWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        import qt

        label = qt.QLabel("R-Super Train: the user interface arrives with the Slicer-extension work.")
        label.wordWrap = True
        self.layout.addWidget(label)
        self.layout.addStretch(1)


class RSuperTrainLogic(ScriptedLoadableModuleLogic):
    pass


class RSuperTrainTest(ScriptedLoadableModuleTest):
    def runTest(self):
        slicer.mrmlScene.Clear()
        self.delayDisplay("RSuperTrain placeholder loads")
