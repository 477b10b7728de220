/* a shared object without clpdd_plugin_entry */
__attribute__((visibility("default"))) int not_the_entry(void) { return 42; }
