#include <stdio.h>

int main(void) {
    puts("hello from a whittle build");
    return 0;
}
