# Installs this build into a temporary prefix and builds and runs a
# consumer against it, through the CMake package and through pkg-config.
add_test(NAME install_consumer
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install_consumer.sh
          ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/install_consumer)
set_tests_properties(install_consumer PROPERTIES
  TIMEOUT 300 SKIP_RETURN_CODE 77
  # A sanitized library needs sanitized consumers.
  ENVIRONMENT "CMAKE=${CMAKE_COMMAND};CLXENT_SANITIZE=${CLXENT_SANITIZE}")
