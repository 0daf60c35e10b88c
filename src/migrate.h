/*
 * migrate.h
 *		Shared declarations of the migrate extension.
 *
 * One file per concern:
 *	 migrate.c	 module load, GUCs, the error context of a running migration
 *	 version.c	 version text -> order key (the order people mean)
 *	 checksum.c  SHA-256 of normalised script text, and of plans
 *	 script.c	 splitting scripts into statements with PostgreSQL's parser
 *	 catalog.c	 reading and writing the migrate.* catalog as its owner
 *	 expect.c	 row-count expectations: parsing and counting
 *	 plan.c		 the requirement graph and its walks; which pending
 *				 migrations run, and in what order; the plan checksum that
 *				 migrate_apply/migrate_run check
 *	 register.c  migrate_add()
 *	 drift.c	 new text for an applied migration: changed or edited, and
 *				 apply refused while one is changed
 *	 files.c	 migration files: names, sections, directives; migrate_load(),
 *				 migrate_add_script(), migrate_compare_scripts()
 *	 apply.c	 migrate_apply(), and one migration applied with its checks
 *	 execute.c	 running a script's statements (shared by apply, run, jobs,
 *				 rollback)
 *	 lint.c		 migrate_lint(): safety rules from parse trees and the live
 *				 catalog, checked before a migration runs
 *	 lockwait.c  lock waits bounded by migrate.lock_timeout; a migration
 *				 that timed out retried from its start; who holds the locks
 *	 commit.c	 what a COMMIT ends, at an absorbed COMMIT and at the end
 *				 of every migration
 *	 lifecycle.c migrate_run(), migrate_rollback(), migrate_baseline(),
 *				 migrate_repair(), migrate_remove()
 *	 verify.c	 verify and assert queries, constraint re-checks,
 *				 migrate_verify/check
 *	 validate.c  migrate_validate(), and the state of every migration
 *				 (the migrate.status view, migrate_status())
 *	 history.c	 the hash chain of migrate.history
 *	 tool_histories.c
 *				 other tools' history tables (Supabase CLI, Flyway, dbmate,
 *				 golang-migrate): which may be used, and keeping them in
 *				 step (migrate.sync_histories, migrate_histories())
 *	 import.c	 migrate_import_history(): adopting another tool's history
 *	 jobs.c		 background jobs seen from a session: start, list, wait, steer
 *	 worker.c	 the job's background worker, and the launcher
 *	 batch.c	 batched data migrations: their options, checked at
 *				 registration, and the batch loop a job's worker runs
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* ---- migrate.c ---- */

typedef enum VerifyConstraintsMode
{
	VERIFY_CONSTRAINTS_OFF,
	VERIFY_CONSTRAINTS_TOUCHED,
	VERIFY_CONSTRAINTS_ALL
} VerifyConstraintsMode;

extern int	migrate_verify_constraints;

/* Batched data migrations: what slows a job down or makes it wait (batch.c). */
extern int	migrate_batch_max_lag;
extern int	migrate_batch_max_blocked;
extern int	migrate_batch_lock_retries;

/* migrate.lint: what an error finding of the linter does (lint.c). */
typedef enum LintMode
{
	LINT_MODE_ERROR,
	LINT_MODE_WARN,
	LINT_MODE_OFF
} LintMode;

extern int	migrate_lint_mode;
extern int	migrate_lint_large_rows;
extern int	migrate_lint_large_bytes;	/* kB */

extern ErrorData *run_in_subtransaction(void (*fn) (void *), void *arg, bool keep);

/* ---- version.c ---- */

/* The order key of a version; ereports on text that is not a version. */
extern char *version_key(const char *version);

/* Repeatable migrations are written "R__name"; their keys start with '~'. */
#define REPEATABLE_PREFIX "R__"
#define REPEATABLE_KEY_CHAR '~'
extern char *migration_key(const char *version);
extern char *migration_key_or_null(const char *version);

/* ---- checksum.c ---- */

/* Hex SHA-256 of text with CRLF/CR folded to LF and a leading BOM removed. */
extern char *script_checksum(const char *text);
/* Hex SHA-256 of bytes as they are. */
extern char *sha256_hex(const char *data, size_t len);

/* ---- script.c ---- */

typedef struct ScriptStmt
{
	Node	   *parsetree;		/* raw parse tree of the statement */
	char	   *sql;			/* its text (len bytes, NUL-terminated) */
	int			len;
	int			line;			/* line of its first token in the script */
	int			offset;			/* byte offset of its text in the script */
	int			index;			/* 0-based place in the script */
} ScriptStmt;

/* Where a statement of a script is: a Script keeps these, not parse trees. */
typedef struct ScriptSpan
{
	int			offset;			/* byte offset of its text in the script */
	int			len;
	int			line;			/* line of its first token */
} ScriptSpan;

/*
 * A script split into statements (script_parse()).  It keeps where each
 * statement is, not its parse tree: script_stmt() parses one statement
 * again when asked, so a script of 400,000 statements costs memory for one
 * parse tree at a time.
 */
typedef struct Script
{
	const char *text;
	int			nstmts;
	int			allocated;
	ScriptSpan *spans;
	MemoryContext stmt_cxt;		/* the statement script_stmt() gave last (made once needed) */
	int			current;		/* its index, or -1 */
	ScriptStmt	stmt;
} Script;

/* A syntax error that script_walk() was asked to return. */
typedef struct ScriptSyntaxError
{
	int			sqlerrcode;
	int			line;
	char	   *message;
} ScriptSyntaxError;

typedef void (*ScriptStmtCallback) (ScriptStmt *st, void *arg);

/*
 * Where the lines of a script stand in the file it came from (a section of
 * a migration file): pairs (first script line of a piece, its file line).
 */
typedef struct LineMap
{
	int			n;				/* pairs */
	int		   *pairs;
} LineMap;

/*
 * Split a script into statements, in linear time, interruptibly, with
 * standard_conforming_strings on whatever the session says.  script_walk()
 * hands each statement to a callback and keeps nothing (memory for one
 * statement at a time); script_parse() keeps them all.  A syntax error
 * becomes an ERROR naming what (e.g. "the up script of migration 001") and
 * the line, or with `soft` is returned.
 */
extern ScriptSyntaxError *script_walk(const char *input, const char *what, bool soft,
									  ScriptStmtCallback callback, void *arg);
extern Script *script_parse(const char *input, const char *what);
extern ScriptSyntaxError *script_walk_mapped(const char *input, const LineMap *map, const char *what,
											 bool soft, ScriptStmtCallback callback, void *arg);
extern Script *script_parse_mapped(const char *input, const LineMap *map, const char *what);
extern int	line_map_apply(const LineMap *map, int line);
/*
 * Statement i of a parsed script, its parse tree and text; valid until the
 * next call for another statement of the same script.
 */
extern ScriptStmt *script_stmt(Script *script, int i);
extern int	script_count(const char *input, const char *what);
extern const char *script_skip_bom(const char *text);
extern int	script_stmt_line_at(ScriptStmt *st, int offset);
extern int	char_to_byte_offset(const char *text, int cursorpos);
extern const char *skip_block_comment(const char *p, int *lines);
extern void script_refuse_stmt(const char *what, int line, const char *reason, const char *hint)
			pg_attribute_noreturn();

/* Relations a statement writes or alters, as RangeVars (may be empty). */
extern List *stmt_written_relations(Node *parsetree);
extern List *stmt_locked_relations(Node *parsetree);
extern const char *stmt_forbidden_reason(Node *parsetree, const char **hint);
extern const char *stmt_absorbed(Node *parsetree);
extern const char *stmt_non_transactional(Node *parsetree);
extern const char *stmt_new_enum_value(Node *parsetree);
extern bool script_uses_value(const char *script, const char *what, const char *value);
extern bool stmt_uses_value(ScriptStmt *st, const char *value);
extern int	script_exec_stmt(Script *script, int i, const char *what,
							 const char *hint, bool read_only, bool discard);

/* ---- catalog.c ---- */

typedef struct Migration
{
	char	   *version;		/* as written; "R__name" for repeatable ones */
	char	   *key;			/* migration_key(version) */
	bool		repeatable;
	char	   *name;
	char	   *up;				/* NULL when not loaded (applied ones) */
	char	   *down;
	char	   *verify;
	char	   *assertion;		/* the assert query: checked when applied, never again */
	char	   *expect;			/* jsonb as text, or NULL */
	char	   *batch;			/* batch options (jsonb as text), or NULL */
	List	   *requires;		/* version texts */
	List	   *requires_keys;	/* their keys */
	bool		transactional;
	char	   *checksum;
	char	   *source;			/* "migrate_add" or a file name */
	char	   *registered_by;	/* the role whose text it is (loaded ones) */
	List	   *notes;			/* what registration found worth saying */
	List	   *warnings;		/* (message, detail, hint) to give if registered */
	const char *down_where;		/* where the down script comes from, for messages */
	struct ScriptSyntaxError *down_error;	/* its syntax error, when it does not parse */
	bool		failed;			/* a durable failure is recorded */
	bool		applied;
	char	   *applied_checksum;
	bool		explained;		/* the history records its applying (history_scan) */
	bool		history_applied;	/* the history says it is applied (history_scan) */
	List	   *touched;		/* qualified table names, for applied ones */
	char	   *updated_parts;	/* what register_migration() updated ("down script, ..."), or NULL */
	char	   *drift;			/* "changed" or "edited" (applied, registered text differs), or NULL */
	char	   *lines;			/* file line map of its sections (jsonb text), or NULL: files.c */
	char	   *result_detail;	/* what register_migration() says of drift it recorded, or NULL */
} Migration;

/* Registered from a file (its source is the file's name), not by migrate_add(). */
#define migration_from_file(m) ((m)->source != NULL && strcmp((m)->source, "migrate_add") != 0)

/* Runs only in a job: it cannot run in a transaction, or it is batched. */
#define migration_needs_worker(m) (!(m)->transactional || (m)->batch != NULL)

/* Pending: never applied, or a repeatable one whose text changed since. */
#define migration_is_pending(m) \
	(!(m)->applied || ((m)->repeatable && strcmp((m)->applied_checksum, (m)->checksum) != 0))

typedef struct Catalog
{
	int			n;
	Migration **items;			/* in version order */
	char	   *newest_applied_key; /* of versioned ones, or NULL */
	struct ReqGraph *graph;		/* its requirements by index: plan_graph() */
} Catalog;

/* Run catalog queries as the catalog's owner with a pinned search_path. */
typedef struct OwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} OwnerScope;

extern void catalog_enter(OwnerScope *scope);
extern void catalog_leave(OwnerScope *scope);

/* SPI query as the catalog owner; returns SPI result code. */
extern int	catalog_exec(const char *sql, int nargs, Oid *argtypes,
						 Datum *values, const char *nulls);

/* Serialise catalog writers; ereports a clear error on timeout/conflict. */
extern void catalog_lock(void);
/* Record that the catalog changed (after catalog_lock). */
extern void catalog_mark_changed(void);

extern Catalog *catalog_load(bool with_up_of_pending);
extern int	catalog_find_index(Catalog *cat, const char *key);
extern Migration *catalog_find(Catalog *cat, const char *key);

typedef struct ApplyRecord
{
	const char *action;			/* apply, revert, ... */
	double		duration_ms;
	int64		rows;
	int			checks;
	char	   *counts;			/* jsonb text or NULL */
	List	   *touched;		/* qualified names */
	List	   *touched_oids;	/* the same tables' OIDs */
	char	   *detail;			/* jsonb text for history, or NULL */
} ApplyRecord;

extern void catalog_record_applied(Migration *m, ApplyRecord *rec);
extern void catalog_history(const char *version, const char *key,
							const char *name, const char *action,
							const char *checksum, const char *detail_json);
extern char *current_user_name(void);
extern ArrayType *string_list_to_array(List *l);
extern ArrayType *oid_list_to_array(List *oids);
extern char *quote_json(const char *s);
/* A top-level field of a JSON object as text (strings unquoted, numbers as written), or NULL. */
extern const char *jsonb_field_text(Jsonb *jb, const char *key);

/* ---- register.c ---- */

/* Notes that say a part of an applied migration was registered anew. */
#define CHANGED_AFTER_APPLY_NOTE "changed after it was applied: "

/* The longest version and name (bytes): longer ones could not be indexed in the catalog. */
#define MIGRATE_VERSION_MAX_BYTES 500
#define MIGRATE_NAME_MAX_BYTES 1000

/* The note of each enum value a migration adds (the value follows, to the end). */
#define ENUM_ADD_NOTE "adds enum value: "

/*
 * The note of a migration that sets constraint modes (SET CONSTRAINTS): they
 * last until a commit, so a commit must come before the next migration.
 */
#define CONSTRAINT_MODES_NOTE "sets constraint modes until it commits: "

/* The note that flags a down script registered although it does not parse. */
#define DOWN_UNPARSED_NOTE "down script does not parse: "

/* What registering a file or migration did (the result column of migrate_add_script() and friends). */
typedef enum RegisterResult
{
	REGISTER_NONE,				/* not decided yet */
	REGISTER_NEW,
	REGISTER_UNCHANGED,
	REGISTER_CHANGED,			/* a pending migration's text replaced, or an applied one's: drift */
	REGISTER_EDITED,			/* an applied one's comments or whitespace: drift.c */
	REGISTER_RESTORED,			/* an applied one's text is the applied text again */
	REGISTER_UPDATED,			/* its other parts */
	REGISTER_SKIPPED,			/* not a migration file */
	REGISTER_NOT_IN_DIRECTORY	/* pending, registered from a file the directory lacks */
} RegisterResult;

extern const char *register_result_name(RegisterResult r);
extern char *text_arg_cstring(FunctionCallInfo fcinfo, int argno);
extern bool str_equal(const char *a, const char *b);
extern void migration_prepare(Migration *m);
extern void migration_prepare_down(Migration *m);
extern struct ScriptSyntaxError *check_down_script(const char *text, const LineMap *map, const char *where);
extern char *down_unparsed_note(struct ScriptSyntaxError *e);
extern void warn_down_unparsed(const char *version, const char *where, struct ScriptSyntaxError *e);
extern void refuse_unparsed_downs(List *steps);
extern RegisterResult register_migration(Catalog *cat, Migration *m);
extern void registered_check_requirements(List *migrations);

/* ---- files.c ---- */

/* A migration's section ("up", "down", "verify", "assert") and its lines in its file. */
extern LineMap *migration_line_map(Migration *m, const char *section);
extern int	migration_file_line(Migration *m, const char *section, int line);
extern char *migration_script_what(Migration *m, const char *section);
extern Script *migration_script(Migration *m, const char *section);
extern bool text_has_section_markers(const char *text);

/* A "-- migrate:<name> <arg>" line of a script, outside strings and bodies. */
typedef struct ScriptDirective
{
	int			line;			/* in the script */
	char	   *arg;			/* the rest of the line, trimmed */
} ScriptDirective;
extern List *script_directives(const char *text, const char *name);

/* ---- drift.c ---- */

typedef enum DriftKind
{
	DRIFT_NONE,
	DRIFT_CHANGED,				/* its statements differ from the applied ones */
	DRIFT_EDITED				/* only comments or whitespace differ */
} DriftKind;

extern bool script_tokens_equal(const char *a, const char *b);
extern int	first_differing_line(const char *a, const char *b);
extern char *migration_applied_text(Migration *m);
extern char *applied_text_kept(Migration *m, bool *kept);
extern DriftKind drift_judge(Migration *old, Migration *m, char **applied_text, int *line);
extern const char *drift_name(DriftKind d);
extern void drift_report(Migration *old, Migration *m, DriftKind d, int line);
extern char *drift_detail(Migration *old, Migration *m, DriftKind d, int line);
extern bool migration_is_changed(Migration *m);
extern void refuse_while_changed(Catalog *cat, const char *caller);
extern void refuse_changed_rollback(List *steps);
extern bool drift_edited_proven(const char *key, const char *applied_checksum, const char *checksum);

/* ---- expect.c ---- */

typedef enum ExpectKind
{
	EXPECT_EXACT,
	EXPECT_DELTA,
	EXPECT_SAME
} ExpectKind;

typedef struct Expectation
{
	char	   *table;			/* as written */
	ExpectKind	kind;
	int64		n;				/* exact count or delta */
	int64		before;			/* -1 when not counted */
	int64		after;
	/*
	 * The name is resolved once, before the migration, with the search_path
	 * in force then (the caller's): a table that exists is pinned to its
	 * schema; one that does not is looked up after the migration with that
	 * same search_path.  The migration's own SET search_path never changes
	 * which table the name means.
	 */
	char	   *relname;
	Oid			nspid;			/* the schema it was found in, or InvalidOid */
	char	   *search_path;	/* the caller's, for a table made by the migration */
	Oid			relid_after;	/* what the name means after the migration */
	/* the table before the migration, and what proves "=" without counting */
	Oid			relid;
	bool		existed;
	bool		deferred;		/* "=": settle after the migration */
	bool		proven;			/* "=": no row inserted or deleted */
	bool		in_place;		/* "=": a TRUNCATE could keep its file */
	Oid			relfilenode;
	int64		inserted;		/* this transaction's counts before */
	int64		deleted;
	struct SnapshotData *snapshot;	/* to count "before" afterwards */
} Expectation;

/* Parse and validate an expect jsonb; ereports naming table and value. */
extern List *expect_parse(Jsonb *expect);
extern void expect_count_before(List *expectations, List *written, const char *version);
/* Count after; returns number passed or ereports on the first mismatch. */
extern int	expect_check_after(List *expectations, const char *version);
/* Batched migrations: count every table now; later, check against those counts. */
extern List *expect_count_all(List *expectations, const char *version);
extern void expect_restore_before(List *expectations, List *counts, const char *version);
extern char *expect_counts_json(List *expectations);

/* ---- plan.c ---- */

typedef struct PlanStep
{
	Migration  *m;
	const char *reason;
	/* filled by plan_checksum() */
	char	   *verify_checksum;	/* script_checksum() of the verify query, or NULL */
	char	   *down_checksum;	/* of the down script, or NULL */
	char	   *text;			/* what the step adds to the plan checksum */
	/* filled by plan_pending() */
	bool		waits_worker;	/* non-transactional, or requires one that waits */
	const char *blocker;		/* the requirement (as written) it waits with, or NULL */
	const char *enum_value;		/* an enum value it uses that an earlier step adds, or NULL */
	const char *enum_adder;		/* the version of that step */
	const char *modes_setter;	/* the step before it sets constraint modes: its version */
} PlanStep;

/* A step as it was reviewed: kept by runners that plan again after each commit. */
typedef struct ReviewedStep
{
	char	   *key;
	char	   *text;
} ReviewedStep;

/*
 * The requirement graph of a loaded catalog, by index into cat->items: the
 * requirements of item i are to[off[i]] .. to[off[i + 1] - 1], in the order
 * written (the k-th is m->requires_keys' k-th), -1 for one not registered.
 * Every walk over it is iterative and linear in nodes plus edges.
 */
typedef struct ReqGraph
{
	int			n;
	int		   *off;			/* n + 1 offsets into to[] */
	int		   *to;
} ReqGraph;

extern ReqGraph *plan_graph(Catalog *cat);
/*
 * Cycles reachable from the given items (all when roots is NULL), each as
 * an int List of indexes v0, v1, ..., vk: v0 requires v1, ..., vk requires
 * v0.  With all = false, the first one found (or NIL).
 */
extern List *plan_find_cycles(Catalog *cat, const int *roots, int nroots, bool all);
/* "a -> b -> a" for a cycle of plan_find_cycles() */
extern char *plan_cycle_chain(Catalog *cat, List *cycle);
/*
 * For every item: pending and cannot run in a transaction, or requires a
 * pending one that waits (directly or not): it waits for the background worker.
 */
extern bool *plan_waits_for_worker(Catalog *cat);
/* Pending, versioned, older than the newest applied one, and not waiting for the worker. */
extern bool plan_out_of_order(Catalog *cat, Migration *m, bool waits);
/* The up script of m, from the catalog when m was loaded without it. */
extern const char *migration_up_text(Migration *m);
/* Pending migrations up to target_key (NULL: all), ordered; ereports on bad plans. */
extern List *plan_pending(Catalog *cat, const char *target_key, bool out_of_order,
						  bool check_out_of_order);
/*
 * ereports if the requirements of these migrations (of cat) name one that is
 * not registered, or close a cycle.
 */
extern void plan_check_requirements(Catalog *cat, List *migrations);

/*
 * Reviewed plans.  migrate_plan() shows plan_checksum(steps); a runner given
 * that checksum (the `plan` argument of migrate_apply and migrate_run; a job
 * stores it in its row) plans under the catalog lock, then calls
 * plan_check_reviewed() before running anything.  A runner that commits
 * between steps and plans again each time also calls
 * plan_next_step_reviewed() before each step.
 */
extern char *plan_checksum(List *steps);
/* The `plan` argument (number argno) if given: 64 hex digits, lower-cased; else NULL. */
extern char *plan_checksum_arg(FunctionCallInfo fcinfo, int argno);
/* Refuse (55000) a plan whose checksum is not `reviewed`; returns its ReviewedSteps. */
extern List *plan_check_reviewed(List *steps, const char *reviewed);
/* Refuse (55000) a next step that was not reviewed; false when the reviewed ones are done. */
extern bool plan_next_step_reviewed(List *reviewed, List *steps, int done);

/* ---- apply.c ---- */
extern void progress_still_running(int i, int nstmts, int line);
extern List *session_prepared_names(void);
extern void deallocate_prepared_since(List *before);

extern const char *nothing_kept_text(void);
extern void refuse_in_dry_run(Script *script, int i, const char *what);

/* ---- execute.c ---- */

extern int64 run_statements(Script *script, const char *what, const char *hint, List **touched);
extern void apply_step(Migration *m, int step, int nsteps, bool dry_run, ApplyRecord *rec);
extern void progress_notice(const char *result, int step, int nsteps, Migration *m, double ms);
extern List *leave_non_transactional(List *steps, List **left, bool warn);
extern const char *non_transactional_reason(Migration *m);

/* The note that says why registration made a migration non-transactional. */
#define NON_TRANSACTIONAL_NOTE "cannot run in a transaction: "
extern Interval *ms_interval(double ms);

/* ---- lint.c ---- */

typedef enum LintSeverity
{
	LINT_INFO,
	LINT_WARNING,
	LINT_ERROR
} LintSeverity;

typedef struct LintFinding
{
	const char *version;
	int			stmt;			/* 1-based */
	int			line;
	const char *rule;
	LintSeverity severity;
	char	   *table;			/* or NULL */
	double		rows;			/* -1: unknown */
	int64		bytes;			/* -1: unknown */
	const char *lock;			/* the lock mode, or NULL */
	char	   *message;
	char	   *hint;
	bool		allowed;		/* by a -- migrate:allow comment */
	int			seq;			/* order found */
} LintFinding;

extern bool lint_rule_exists(const char *rule);
extern char *lint_rule_names(void);
extern const char *lint_severity_name(LintSeverity s);
extern List *lint_allow_directive(const char *line, char **unknown);
extern List *lint_steps(List *steps);
extern char *lint_finding_text(LintFinding *f);
extern void lint_refuse(List *steps, const char *what);
extern void lint_report(List *steps);

/* ---- lockwait.c ---- */

extern int	migrate_lock_timeout;
extern int	migrate_lock_retries;
extern void lockwait_set_timeout(const char *script);
extern char *lock_timeout_directive(const char *script, int *line);
extern int	lock_timeout_directive_ms(const char *value, int line, const char *what);
extern char *lock_holders_text(List *relids);
extern void apply_step_retrying(Migration *m, int step, int nsteps, bool dry_run, bool shared_transaction,
								ApplyRecord *rec);

/* ---- commit.c ---- */

/* What a block of a script (between commit points) did, for its commit point. */
typedef struct CommitBlock
{
	int			level;			/* its GUC nest level */
	List	   *written;		/* relids of the tables it wrote */
	List	   *cursors;		/* names of the cursors it declared */
	int			on_commit_line; /* a line creating an ON COMMIT DROP/DELETE ROWS table, or 0 */
} CommitBlock;

extern void commit_call_begin(void);
extern void commit_call_end(void);
extern void commit_block_begin(CommitBlock *b);
extern void commit_block_note(CommitBlock *b, ScriptStmt *st, List *written);
extern void commit_absorbed(CommitBlock *b, const char *what, const char *hint, int line);
extern void commit_script_end(CommitBlock *b, const char *what, const char *hint);

/* ---- lifecycle.c ---- */

/* Record a failed run durably: the migration's failure and a history row. */
extern void record_failure(Migration *m, ErrorData *edata, const char *extra_json);

/* ---- tool_histories.c ---- */

/*
 * The other tools' history tables kept in step (migrate.sync_histories):
 * what migrate applies, reverts, baselines, imports or repairs is written
 * there too, as each tool would write it, in the same transaction.
 */
extern bool migrate_sync_histories;
extern void histories_record_apply(Migration *m, Script *script, double ms, const char *except);
extern void histories_record_revert(Migration *m);
extern void histories_record_repair(Migration *m, const char *up);
extern int32 flyway_checksum(const char *text);

#include "nodes/primnodes.h"
#include "storage/lockdefs.h"

/*
 * Another tool's table by name, locked with lockmode once trusted;
 * InvalidOid when there is none.  When it may not be used (read or written
 * with the caller's rights), *detail and *hint say why and the way out.
 */
extern Oid	foreign_history_open(RangeVar *rv, LOCKMODE lockmode, char **detail, char **hint);
/* The relation's name, schema-qualified and quoted. */
extern char *qualified_table(Oid relid);
extern bool has_column(Oid relid, const char *column);

/* ---- jobs.c ---- */

#include "postmaster/bgworker.h"
#include "storage/lock.h"

typedef struct Job
{
	int64		id;
	char	   *role;
	Oid			role_oid;
	char	   *target;
	bool		out_of_order;
	char	   *plan;
	List	   *settings;		/* "name=value" */
	char	   *state;
	char	   *request;		/* "pause", "cancel" or NULL */
	char	   *version;
	int			statement;
	int			steps_done;
	int			steps_total;	/* -1 when unknown */
	int			worker_pid;
	char	   *error;			/* jsonb text or NULL */
	int			attempts;		/* workers started since the last progress */
	bool		starting;		/* a worker was just started for it and has not begun */
} Job;

/* What a job's worker is given when it is started (bgw_extra). */
typedef struct JobWorkerArgs
{
	Oid			dboid;
	Oid			role;
	TransactionId wait_xid;		/* the transaction that queued the job, or invalid */
} JobWorkerArgs;

extern void job_locktag(LOCKTAG *tag, Oid dboid, int64 job);
extern bool job_worker_alive(int64 job);
extern Job *job_read(int64 id, bool for_update);
extern bool job_finished(const char *state);
extern void job_update(int64 id, const char *state, const char *request_or_clear, const char *version,
					   int statement, int steps_done, int steps_total, const char *error_json);
extern char *job_error_json(ErrorData *edata, const char *version, const char *file, int statement, int line);
extern void job_wake_waiters(int64 id);
extern void job_progressed(int64 id);
extern bool job_launch(int64 id, Oid role, TransactionId wait_xid);
extern int	jobs_recover(void);
extern void jobs_recover_if_needed(void);

/* ---- worker.c ---- */

/* What one step of a job did. */
typedef enum StepResult
{
	STEP_DONE,					/* a migration applied, or a pause ended: go on */
	STEP_FINISHED				/* the job ended (succeeded, failed, cancelled) */
} StepResult;

extern MemoryContext job_step_context;
extern void worker_tx_begin(void);
extern void worker_tx_commit(void);
extern void worker_wait_while_paused(int64 id);
extern void worker_reset_settings(Job *j);
extern void worker_abort(void);
extern void job_fail(Job *j, ErrorData *edata, const char *version, int statement, int line);
extern char *job_step_json(Job *j, int step, int total);
extern char *job_step_detail(Job *j, int step, int total);
extern void launcher_register(void);
extern void bgworker_init(BackgroundWorker *worker, const char *function, const char *type);

/* ---- batch.c ---- */

/* Check a batched migration's options and up script at registration (normalises m->batch). */
extern void batch_prepare(Migration *m);
/* The table a batch is on, as written in its options, for messages. */
extern char *batch_table_name(const char *batch_json);
/* Run a batched migration in a job's worker, from its checkpoint. */
extern StepResult run_batched(Job *j, Migration *m, int step, int total);

/* ---- history.c ---- */

typedef struct HistoryBreak
{
	int64		id;				/* the first row that does not follow */
	char	   *version;
	char	   *name;
} HistoryBreak;

extern HistoryBreak *history_scan(Catalog *cat);

/* ---- validate.c ---- */

/* What the history says that is wrong: a broken hash chain, applied rows it does not explain. */
typedef struct HistoryFinding
{
	char	   *problem;		/* "history" or "unrecorded" */
	char	   *version;
	char	   *name;
	char	   *detail;
} HistoryFinding;

extern List *history_findings(Catalog *cat, const char *only_key);
/* The state migrate.status shows for a registered migration (waits: plan_waits_for_worker()). */
extern const char *migration_state(Catalog *cat, Migration *m, bool waits);

/* ---- verify.c ---- */

typedef struct CheckResult
{
	char	   *version;
	char	   *name;
	char	   *check;			/* "checksum", "verify", "foreign key", ... */
	char	   *object;
	bool		ok;
	bool		info;			/* a note, not a check (e.g. a table dropped since) */
	char		sqlstate[6];
	char	   *message;		/* for failures */
	char	   *detail;
} CheckResult;

/* The constraint and index checks for the given relation OIDs; raises on failure. */
extern int	verify_constraints_raise(List *reloids, const char *version);
/* Run a verify script; raises on failure; returns number of checks passed. */
extern int	verify_query_raise(Migration *m);
extern int	assert_query_raise(Migration *m);
/* Add relations (and their partition ancestors) to a list of OIDs. */
extern List *touched_add(List *reloids, Oid relid);
extern List *touched_names(List *reloids);
extern List *touched_existing(List *reloids);

#endif							/* MIGRATE_H */
