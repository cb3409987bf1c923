// Package doccheck holds tests that read the repository's documentation
// (README.md, docs/*.md, and the files under deploy/) against the code, for
// statements that drift unseen: a test named as the proof of a promise that was
// renamed or removed leaves the promise without its proof while the page still
// points to it; a metric or an alert renamed in the code leaves the operator
// who copied its name from a page with an empty panel, or a firing alert to
// look up in vain; a command, verb or flag renamed makes a pasted command line
// fail, and a setting or AMTSBOTE_ variable renamed stops a gateway configured
// from an example at its start. It has no code of its own.
package doccheck
