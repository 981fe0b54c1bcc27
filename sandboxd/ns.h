/* ns.h - namespace set-up that is neither mounts nor identity: network and UTS. */
#pragma once

/* In the job's empty network namespace: bring lo up, the one interface it has. */
int ns_loopback_up(void);
/* In the job's UTS namespace: a fixed name, so the host's name never leaks. */
int ns_set_names(void);
