#!/usr/bin/env python3
"""ctest nn_onnx_*: an avemo ONNX export passes onnx.checker (full check: shape inference too)
and declares what `avemo export --help` promises. Exit 77 when python3-onnx is missing."""
import sys

try:
    import onnx
except ImportError:
    print("SKIPPED: python3-onnx is not installed (apt-get install python3-onnx)")
    sys.exit(77)

model = onnx.load(sys.argv[1])
onnx.checker.check_model(model, full_check=True)
inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
outputs = {o.name: o for o in inferred.graph.output}
assert set(outputs) == {"logits", "probabilities"}, outputs.keys()
classes = outputs["probabilities"].type.tensor_type.shape.dim[1].dim_value
meta = {p.key: p.value for p in model.metadata_props}
labels = meta["labels"].split(",")
assert len(labels) == classes, (labels, classes)
assert "[network]" in meta["pipeline"]
assert model.opset_import[0].version == 13
for i in model.graph.input:
    dims = i.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and len(dims) == 4, i
print("onnx.checker: %s OK (%d nodes, inputs %s, labels %s)" % (
    sys.argv[1], len(model.graph.node), [i.name for i in model.graph.input], ",".join(labels)))
