# Embed the web page (src/serve/web/*.html, *.js, *.css) into libavemo at build time:
# embed.cmake turns the files into byte arrays in <build>/generated/serve/serve_web_assets.h,
# which src/serve/web_assets.c includes (without it the server answers 404 for the page).
# Include this file from the top CMakeLists.txt, before or after add_library(avemo_objects):
#   include(src/serve/web/web.cmake)
function(avemo_embed_web web_dir)
  set(out_dir ${PROJECT_BINARY_DIR}/generated/serve)
  set(out ${out_dir}/serve_web_assets.h)
  file(GLOB web_files CONFIGURE_DEPENDS ${web_dir}/*.html ${web_dir}/*.js ${web_dir}/*.css ${web_dir}/*.svg ${web_dir}/*.json)
  file(MAKE_DIRECTORY ${out_dir})
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${web_dir} -DOUT=${out} -P ${web_dir}/embed.cmake
    DEPENDS ${web_files} ${web_dir}/embed.cmake
    COMMENT "Embedding the web page of avemo serve"
    VERBATIM)
  target_sources(avemo_objects PRIVATE ${out})
  target_include_directories(avemo_objects PRIVATE ${out_dir})
endfunction()

if(TARGET avemo_objects)
  avemo_embed_web(${CMAKE_CURRENT_LIST_DIR})
else()
  # included before the library is defined: run at the end of this directory (EVAL expands
  # the folder now; a deferred call would read CMAKE_CURRENT_LIST_DIR only when it runs)
  cmake_language(EVAL CODE "cmake_language(DEFER CALL avemo_embed_web [[${CMAKE_CURRENT_LIST_DIR}]])")
endif()
