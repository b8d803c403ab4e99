/* Says which architecture it was built for: the image's end-to-end test runs it under
 * qemu-user for each of the five and checks the answer. Apache-2.0, like the project. */
#include <stdio.h>

#ifndef ARCH
#error "build with -DARCH='\"<apk arch>\"' (the recipe passes ${{build.arch}})"
#endif

int main(void)
{
    if (puts("hello from " ARCH) == EOF)
        return 1;
    return 0;
}
