/* A shared library without the Stylegraph entry symbol: the host must refuse it. */
int some_other_function(int x);
int some_other_function(int x) { return x + 1; }
