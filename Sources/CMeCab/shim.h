// libmecab's C API (Debian: libmecab-dev).
#include <mecab.h>
