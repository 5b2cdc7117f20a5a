# ONNX export (src/nn/onnx_export.c): C code for ONNX's own onnx.proto, generated at build time by
# protoc-c (Debian protobuf-c-compiler) from the schema Debian's libonnx-dev installs, and linked
# with libprotobuf-c.  AVEMO_ONNX_PROTO names another copy of the schema.
find_program(AVEMO_PROTOC_C NAMES protoc-c)
if(NOT AVEMO_PROTOC_C)
  message(FATAL_ERROR "protoc-c not found: apt-get install protobuf-c-compiler (./setup.sh installs it)")
endif()
set(AVEMO_ONNX_PROTO /usr/include/onnx/onnx.proto CACHE FILEPATH "ONNX's onnx.proto (Debian libonnx-dev)")
if(NOT EXISTS ${AVEMO_ONNX_PROTO})
  message(FATAL_ERROR "${AVEMO_ONNX_PROTO} not found: apt-get install libonnx-dev (./setup.sh installs it)")
endif()

set(onnx_gen_dir ${PROJECT_BINARY_DIR}/generated/onnx)
file(MAKE_DIRECTORY ${onnx_gen_dir})
get_filename_component(onnx_proto_dir ${AVEMO_ONNX_PROTO} DIRECTORY)
get_filename_component(onnx_proto_name ${AVEMO_ONNX_PROTO} NAME_WE)
set(AVEMO_ONNX_PB_C ${onnx_gen_dir}/${onnx_proto_name}.pb-c.c)
add_custom_command(OUTPUT ${AVEMO_ONNX_PB_C} ${onnx_gen_dir}/${onnx_proto_name}.pb-c.h
  COMMAND ${AVEMO_PROTOC_C} --c_out=${onnx_gen_dir} -I${onnx_proto_dir} ${AVEMO_ONNX_PROTO}
  DEPENDS ${AVEMO_ONNX_PROTO}
  COMMENT "protoc-c: C code for ${AVEMO_ONNX_PROTO}"
  VERBATIM)
# Generated code: not ours to fix for -Wextra.
set_source_files_properties(${AVEMO_ONNX_PB_C} PROPERTIES COMPILE_OPTIONS "-w")
