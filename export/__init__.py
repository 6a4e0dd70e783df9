"""ONNX export of a model directory (tf2onnx), with the CAM output and metadata: issue #5, not built yet."""
