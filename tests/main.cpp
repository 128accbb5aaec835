#define DOCTEST_CONFIG_IMPLEMENT
#include "support.hpp"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  int failed = context.run();
  if (!context.shouldExit()) test::print_skips();
  return failed;
}
