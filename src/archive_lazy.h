/*
 * archive_lazy.h: libarchive, opened on first use (lazylib.h), for the
 * natives that write archives: docker.c (build contexts as tar) and
 * vercel.c (the source as .tgz parts). One table of the functions they
 * call; sw_archive_require() fills it (raises when libarchive cannot be
 * loaded) and is cheap once it has.
 */
#ifndef SLIPWAY_ARCHIVE_LAZY_H
#define SLIPWAY_ARCHIVE_LAZY_H

#include <sys/stat.h>
#include <time.h>
#include <archive.h>
#include <archive_entry.h>
#include <lua.h>

struct sw_archive_api {
  struct archive *(*write_new)(void);
  int (*add_filter_gzip)(struct archive *);
  int (*set_format_pax_restricted)(struct archive *);
  int (*set_bytes_in_last_block)(struct archive *, int);
  int (*open)(struct archive *, void *, archive_open_callback *, archive_write_callback *,
              archive_close_callback *);
  int (*open_filename)(struct archive *, const char *);
  int (*write_header)(struct archive *, struct archive_entry *);
  la_ssize_t (*write_data)(struct archive *, const void *, size_t);
  int (*write_close)(struct archive *);
  int (*write_free)(struct archive *);
  const char *(*error_string)(struct archive *);
  struct archive_entry *(*entry_new)(void);
  void (*entry_free)(struct archive_entry *);
  void (*entry_clear)(struct archive_entry *);
  void (*entry_copy_stat)(struct archive_entry *, const struct stat *);
  void (*entry_set_pathname)(struct archive_entry *, const char *);
  void (*entry_set_size)(struct archive_entry *, la_int64_t);
  void (*entry_set_filetype)(struct archive_entry *, unsigned int);
  void (*entry_set_perm)(struct archive_entry *, __LA_MODE_T);
  void (*entry_set_mtime)(struct archive_entry *, time_t, long);
  void (*entry_set_uid)(struct archive_entry *, la_int64_t);
  void (*entry_set_gid)(struct archive_entry *, la_int64_t);
  void (*entry_set_symlink)(struct archive_entry *, const char *);
};

extern struct sw_archive_api sw_la;

void sw_archive_require(lua_State *L);

#endif
