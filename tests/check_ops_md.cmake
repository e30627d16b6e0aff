# Fails when docs/ops.md differs from what the registry generates, so the op
# reference never drifts. Regenerate with:
#   build/ci/slope ops --markdown > docs/ops.md
execute_process(COMMAND ${SLOPE} ops --markdown OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "slope ops --markdown failed (${rc})")
endif()
file(READ ${DOC} committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "docs/ops.md differs from `slope ops --markdown`; regenerate it with\n"
                      "  ${SLOPE} ops --markdown > ${DOC}")
endif()
