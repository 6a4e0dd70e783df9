"""`detect export`: a model directory -> one self-describing ONNX file (tf2onnx), checked against Keras.

`export.onnx_export` converts, writes the metadata, checks parity and quantizes (fp16, static int8);
`export.samples` supplies the tiles that calibrate int8 and check the file.
"""
