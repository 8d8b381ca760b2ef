"""The identity service: users, pending students, email changes and student-file rows."""
