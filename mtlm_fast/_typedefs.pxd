# One place for the C type names used by every kernel.
from libc.stdint cimport int32_t, int64_t, uint8_t

ctypedef Py_ssize_t intp_t
ctypedef float float32_t
ctypedef double float64_t
