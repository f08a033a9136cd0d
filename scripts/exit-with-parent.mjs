// Preloaded (node --import) into the demo's processes: when the process that started this one
// goes away (npm killed, terminal closed, the demo script killed), this one stops too, through
// its own SIGTERM handler, rather than running on as an orphan.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
}, 500).unref();
