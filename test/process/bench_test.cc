// `sqraft bench` against a real cluster (to be written).
#include <doctest/doctest.h>
