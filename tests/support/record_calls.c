/* record_calls FILE ID: the chaos test's handler. Appends "ID\n" to FILE with one write() on an
 * O_APPEND descriptor, so concurrent calls from many workers never interleave, and exits 0.
 * Counting the lines per id afterwards says how often the handler ran for each item. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: record_calls FILE ID\n");
        return 2;
    }
    size_t n = strlen(argv[2]);
    char *line = malloc(n + 1);
    if (!line) return 1;
    memcpy(line, argv[2], n);
    line[n] = '\n';
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    ssize_t w = write(fd, line, n + 1);
    free(line);
    if (w != (ssize_t)(n + 1) || close(fd) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
