# The Python package (python/) under pytest, in a fresh venv against this
# build's libclxent (tools/python_tests.sh; exits 77, a skip, when Debian's
# Python lacks venv, cffi or pytest). Not in sanitizer builds: Python
# cannot load a library built with -fsanitize without preloading its
# runtime.
if(NOT CLXENT_SANITIZE AND EXISTS /usr/bin/python3)
  add_test(NAME python_package
           COMMAND bash ${PROJECT_SOURCE_DIR}/tools/python_tests.sh
                   $<TARGET_FILE_DIR:clxent>)
  set_tests_properties(python_package PROPERTIES SKIP_RETURN_CODE 77
                       TIMEOUT 1200)
endif()
