/* alsa-lib's error handler is variadic, which stable Rust cannot define:
 * this one formats the message and passes it to Rust as one string. The
 * prototype is declared here so the build needs no ALSA headers. */
#include <stdarg.h>
#include <stdio.h>

typedef void (*audiodev_alsa_handler_t)(const char *file, int line, const char *function,
                                        int err, const char *fmt, ...);
extern int snd_lib_error_set_handler(audiodev_alsa_handler_t handler);

/* Implemented in Rust (alsa_quiet.rs). */
extern void audiodev_alsa_message(const char *function, int err, const char *message);

static void audiodev_alsa_handler(const char *file, int line, const char *function, int err,
                                  const char *fmt, ...) {
    char message[512];
    va_list ap;
    (void)file;
    (void)line;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    audiodev_alsa_message(function, err, message);
}

int audiodev_alsa_quiet(void) {
    return snd_lib_error_set_handler(audiodev_alsa_handler);
}
