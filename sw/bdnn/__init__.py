"""BDNN: binarized dense CNNs for facial expression recognition (FER2013) on FINN accelerators.

Importing the package is cheap and pulls in neither torch nor FINN: the on-board path (five-crop,
combine, the pynq/cpu backends) runs on a PYNQ image with numpy and Pillow only.
"""
__version__ = "0.1.0"
