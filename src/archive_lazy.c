/*
 * archive_lazy.c: the libarchive functions slipway calls, resolved on
 * first use (archive_lazy.h).
 */
#include "archive_lazy.h"
#include "lazylib.h"

struct sw_archive_api sw_la;

static const struct sw_lazysym syms[] = {
  {"archive_write_new", (void **)&sw_la.write_new},
  {"archive_write_add_filter_gzip", (void **)&sw_la.add_filter_gzip},
  {"archive_write_set_format_pax_restricted", (void **)&sw_la.set_format_pax_restricted},
  {"archive_write_set_bytes_in_last_block", (void **)&sw_la.set_bytes_in_last_block},
  {"archive_write_open", (void **)&sw_la.open},
  {"archive_write_open_filename", (void **)&sw_la.open_filename},
  {"archive_write_header", (void **)&sw_la.write_header},
  {"archive_write_data", (void **)&sw_la.write_data},
  {"archive_write_close", (void **)&sw_la.write_close},
  {"archive_write_free", (void **)&sw_la.write_free},
  {"archive_error_string", (void **)&sw_la.error_string},
  {"archive_entry_new", (void **)&sw_la.entry_new},
  {"archive_entry_free", (void **)&sw_la.entry_free},
  {"archive_entry_clear", (void **)&sw_la.entry_clear},
  {"archive_entry_copy_stat", (void **)&sw_la.entry_copy_stat},
  {"archive_entry_set_pathname", (void **)&sw_la.entry_set_pathname},
  {"archive_entry_set_size", (void **)&sw_la.entry_set_size},
  {"archive_entry_set_filetype", (void **)&sw_la.entry_set_filetype},
  {"archive_entry_set_perm", (void **)&sw_la.entry_set_perm},
  {"archive_entry_set_mtime", (void **)&sw_la.entry_set_mtime},
  {"archive_entry_set_uid", (void **)&sw_la.entry_set_uid},
  {"archive_entry_set_gid", (void **)&sw_la.entry_set_gid},
  {"archive_entry_set_symlink", (void **)&sw_la.entry_set_symlink},
  {NULL, NULL}
};

static const char *const sonames[] = {"libarchive.so.13", "libarchive.so", NULL};

void sw_archive_require(lua_State *L) {
  sw_lazylib_load(L, sonames, syms);
}
