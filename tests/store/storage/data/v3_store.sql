BEGIN TRANSACTION;
CREATE TABLE artifacts (
	digest VARCHAR(64) NOT NULL, 
	size BIGINT NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	version VARCHAR(255) NOT NULL, 
	signature_digest VARCHAR(64), 
	manifest JSON NOT NULL, 
	created DATETIME NOT NULL, 
	PRIMARY KEY (digest)
);
INSERT INTO "artifacts" VALUES('aa66effcd10bbe7cbe5444bcdab113278ac4f284fb232d8d65ee69b2953bd5bc',100,'apache','1.0.0','f3f15a23e43f1388ece45c2f00ba41bfd2920b2279d403707655f6153c114205','{"name": "apache", "version": "1.0.0", "title": "Apache"}','2026-12-01 10:46:31.882571');
INSERT INTO "artifacts" VALUES('cbdf231c8c7455cc0058510afe3a96880032bce30a66ce95b8376eec5cc13dba',101,'apache','1.0.1',NULL,'{"name": "apache", "version": "1.0.1", "title": "Apache"}','2026-12-01 10:46:31.882571');
INSERT INTO "artifacts" VALUES('f74177ad571f25985225280a355f1b152044df6c1ab00067ae09e59101c781d5',102,'apache','1.0.2',NULL,'{"name": "apache", "version": "1.0.2", "title": "Apache"}','2026-12-01 10:46:31.882571');
CREATE TABLE catalog_state (
	id INTEGER NOT NULL, 
	change_seq BIGINT NOT NULL, 
	changed_at DATETIME, 
	PRIMARY KEY (id)
);
INSERT INTO "catalog_state" VALUES(1,4,'2026-12-01 10:46:32.309758');
CREATE TABLE distributions (
	name VARCHAR(64) NOT NULL, 
	current_revision INTEGER, 
	PRIMARY KEY (name)
);
INSERT INTO "distributions" VALUES('snapshot',3);
INSERT INTO "distributions" VALUES('production',1);
INSERT INTO "distributions" VALUES('staging',1);
CREATE TABLE events (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	time DATETIME NOT NULL, 
	actor VARCHAR(255) NOT NULL, 
	action VARCHAR(64) NOT NULL, 
	stage VARCHAR(64), 
	name VARCHAR(255), 
	version VARCHAR(255), 
	reason TEXT, 
	detail JSON NOT NULL
);
INSERT INTO "events" VALUES(1,'2026-12-01 10:46:31.882571','alice','publish','snapshot','apache','1.0.0',NULL,'{"digest": "aa66effcd10bbe7cbe5444bcdab113278ac4f284fb232d8d65ee69b2953bd5bc"}');
INSERT INTO "events" VALUES(2,'2026-12-01 10:46:31.882571','alice','publish','snapshot','apache','1.0.1',NULL,'{"digest": "cbdf231c8c7455cc0058510afe3a96880032bce30a66ce95b8376eec5cc13dba"}');
INSERT INTO "events" VALUES(3,'2026-12-01 10:46:31.882571','alice','publish','snapshot','apache','1.0.2',NULL,'{"digest": "f74177ad571f25985225280a355f1b152044df6c1ab00067ae09e59101c781d5"}');
INSERT INTO "events" VALUES(4,'2026-12-01 10:46:32.130066','bob','promote','production','apache','1.0.0','release','{}');
INSERT INTO "events" VALUES(5,'2026-12-01 10:46:32.309758','bob','yank','snapshot','apache','1.0.1','broken','{}');
CREATE TABLE revisions (
	distribution VARCHAR(64) NOT NULL, 
	number INTEGER NOT NULL, 
	seq BIGINT NOT NULL, 
	stages JSON NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	acc VARCHAR(64) NOT NULL, 
	count INTEGER NOT NULL, 
	created DATETIME NOT NULL, 
	server_version VARCHAR(64) NOT NULL, 
	git_commit VARCHAR(40), 
	PRIMARY KEY (distribution, number), 
	FOREIGN KEY(distribution) REFERENCES distributions (name)
);
INSERT INTO "revisions" VALUES('snapshot',1,2,'["production", "staging", "snapshot"]','f04af872f3edb824adda3f1a65cf859c7c68c8ffe5e82cd64d68e1bb69768516','1700c77c2f1ceeb9bf3fb65f555ed3615e6ab6e43ebdda1b605812904c314daf',3,'2026-12-01 10:46:31.882571','0.1.0',NULL);
INSERT INTO "revisions" VALUES('production',1,3,'["production"]','46abb5e62948100e4d331c046343e141320235d19dc8dcf180ea2ee38b08c5a0','60e14ff4ed1a6951331fb3491fcadb44a4afc3a20824bd4ccb2a3b4b69a68a16',1,'2026-12-01 10:46:32.130066','0.1.0','0123456789abcdef0123456789abcdef01234567');
INSERT INTO "revisions" VALUES('staging',1,3,'["production", "staging"]','46abb5e62948100e4d331c046343e141320235d19dc8dcf180ea2ee38b08c5a0','60e14ff4ed1a6951331fb3491fcadb44a4afc3a20824bd4ccb2a3b4b69a68a16',1,'2026-12-01 10:46:32.130066','0.1.0',NULL);
INSERT INTO "revisions" VALUES('snapshot',2,3,'["production", "staging", "snapshot"]','f04af872f3edb824adda3f1a65cf859c7c68c8ffe5e82cd64d68e1bb69768516','1700c77c2f1ceeb9bf3fb65f555ed3615e6ab6e43ebdda1b605812904c314daf',3,'2026-12-01 10:46:32.130066','0.1.0',NULL);
INSERT INTO "revisions" VALUES('snapshot',3,4,'["production", "staging", "snapshot"]','f04af872f3edb824adda3f1a65cf859c7c68c8ffe5e82cd64d68e1bb69768516','1700c77c2f1ceeb9bf3fb65f555ed3615e6ab6e43ebdda1b605812904c314daf',3,'2026-12-01 10:46:32.309758','0.1.0',NULL);
CREATE TABLE schema_version (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	updated DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "schema_version" VALUES(1,3,'2026-12-01 10:46:31.661251');
CREATE TABLE stage_entries (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	stage VARCHAR(64) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	version VARCHAR(255) NOT NULL, 
	artifact VARCHAR(64) NOT NULL, 
	added_seq BIGINT NOT NULL, 
	removed_seq BIGINT, 
	added_at DATETIME NOT NULL, 
	added_by VARCHAR(255) NOT NULL, 
	yanked BOOLEAN DEFAULT 0 NOT NULL, 
	FOREIGN KEY(artifact) REFERENCES artifacts (digest)
);
INSERT INTO "stage_entries" VALUES(1,'snapshot','apache','1.0.0','aa66effcd10bbe7cbe5444bcdab113278ac4f284fb232d8d65ee69b2953bd5bc',2,3,'2026-12-01 10:46:31.882571','alice',0);
INSERT INTO "stage_entries" VALUES(2,'snapshot','apache','1.0.1','cbdf231c8c7455cc0058510afe3a96880032bce30a66ce95b8376eec5cc13dba',2,4,'2026-12-01 10:46:31.882571','alice',0);
INSERT INTO "stage_entries" VALUES(3,'snapshot','apache','1.0.2','f74177ad571f25985225280a355f1b152044df6c1ab00067ae09e59101c781d5',2,NULL,'2026-12-01 10:46:31.882571','alice',0);
INSERT INTO "stage_entries" VALUES(4,'production','apache','1.0.0','aa66effcd10bbe7cbe5444bcdab113278ac4f284fb232d8d65ee69b2953bd5bc',3,NULL,'2026-12-01 10:46:32.130066','bob',0);
INSERT INTO "stage_entries" VALUES(5,'snapshot','apache','1.0.1','cbdf231c8c7455cc0058510afe3a96880032bce30a66ce95b8376eec5cc13dba',4,NULL,'2026-12-01 10:46:31.882571','alice',1);
CREATE TABLE stages (
	name VARCHAR(64) NOT NULL, 
	rank INTEGER NOT NULL, 
	overwrite VARCHAR(16) NOT NULL, 
	remove VARCHAR(16) NOT NULL, 
	frozen BOOLEAN NOT NULL, 
	sees JSON NOT NULL, 
	promotes_to VARCHAR(64), 
	publish BOOLEAN, 
	PRIMARY KEY (name)
);
INSERT INTO "stages" VALUES('production',2,'never','never',0,'[]',NULL,NULL);
INSERT INTO "stages" VALUES('staging',1,'force','force',0,'["production"]','production',NULL);
INSERT INTO "stages" VALUES('snapshot',0,'always','always',0,'["staging", "production"]','staging',NULL);
CREATE TABLE tags (
	distribution VARCHAR(64) NOT NULL, 
	tag VARCHAR(128) NOT NULL, 
	revision INTEGER NOT NULL, 
	created DATETIME NOT NULL, 
	created_by VARCHAR(255) NOT NULL, 
	PRIMARY KEY (distribution, tag), 
	FOREIGN KEY(distribution, revision) REFERENCES revisions (distribution, number)
);
INSERT INTO "tags" VALUES('production','v1',1,'2026-12-01 10:46:32.309758','bob');
CREATE TABLE tokens (
	id VARCHAR(16) NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	secret_hash VARCHAR(64) NOT NULL, 
	scopes JSON NOT NULL, 
	created DATETIME NOT NULL, 
	created_by VARCHAR(255) NOT NULL, 
	expires DATETIME, 
	revoked DATETIME, 
	revoked_by VARCHAR(255), 
	PRIMARY KEY (id)
);
INSERT INTO "tokens" VALUES('tok0000000000001','ci','2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b','["publish"]','2026-12-01 10:46:32.309758','bob','2030-01-01 00:00:00.000000',NULL,NULL);
CREATE INDEX ix_artifacts_name_version ON artifacts (name, version);
CREATE INDEX ix_events_stage ON events (stage);
CREATE INDEX ix_events_name_version ON events (name, version);
CREATE UNIQUE INDEX uq_tokens_live_name ON tokens (name) WHERE revoked IS NULL;
CREATE INDEX ix_stage_entries_removed ON stage_entries (stage, removed_seq);
CREATE INDEX ix_stage_entries_added ON stage_entries (stage, added_seq);
CREATE UNIQUE INDEX uq_stage_entries_live ON stage_entries (stage, name, version) WHERE removed_seq IS NULL;
CREATE INDEX ix_stage_entries_key ON stage_entries (name, version);
CREATE INDEX ix_revisions_commit ON revisions (distribution, git_commit);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('stage_entries',5);
INSERT INTO "sqlite_sequence" VALUES('events',5);
COMMIT;
