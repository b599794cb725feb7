-- An email must at least look like one: an empty string ('""' in a CSV file) is refused on
-- import, where NULL already was. NOT VALID: rows already in an adopted table are not checked.
ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email LIKE '_%@_%') NOT VALID;
